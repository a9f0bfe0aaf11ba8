/*
 * A stable Elasticsearch plugin with the four analysis parts of the analysis-common module that the
 * .security index's mapping names (its "email" analyzer): pattern_capture, uax_url_email, lowercase
 * and unique. The integ-test-zip that compose/local runs lacks that module and Maven Central does not
 * publish it; without these, the .security index cannot be made, and API keys cannot be created.
 * compose/secure.py compiles this folder with the JDK's javac against the installation's own jars
 * (Lucene's filters do the work) into a copy of the installation used only in secure mode.
 */
package conductor.analysis;

import java.util.List;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.BooleanSetting;
import org.elasticsearch.plugin.settings.ListSetting;

@NamedComponent("pattern_capture")
public class PatternCapture implements TokenFilterFactory {
    @AnalysisSettings
    public interface Settings {
        @ListSetting(path = "patterns")
        List<String> patterns();

        @BooleanSetting(path = "preserve_original", defaultValue = true)
        boolean preserveOriginal();
    }

    private final Pattern[] patterns;
    private final boolean preserveOriginal;

    @Inject
    public PatternCapture(Settings settings) {
        this.patterns = settings.patterns().stream().map(Pattern::compile).toArray(Pattern[]::new);
        this.preserveOriginal = settings.preserveOriginal();
    }

    @Override
    public TokenStream create(TokenStream input) {
        return new PatternCaptureGroupTokenFilter(input, preserveOriginal, patterns);
    }
}
