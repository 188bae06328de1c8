/*
 * Vivace test harness stand-in for three analysis components of Elasticsearch's
 * analysis-common module (not published to Maven Central): the ones the
 * security system index's `email` analyzer names, without which security cannot
 * create that index (where it keeps API keys). Written for Vivace with public
 * Elasticsearch and Lucene APIs; each component is the Lucene class doing the work:
 *   uax_url_email    UAX29URLEmailTokenizer (max_token_length)
 *   pattern_capture  PatternCaptureGroupTokenFilter (patterns, preserve_original)
 *   unique           RemoveDuplicatesTokenFilter (drops repeats at one position
 *                    only, whatever only_on_same_position says: enough here)
 */
package vivace.testnode;

import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public final class EmailAnalysisPlugin extends Plugin implements AnalysisPlugin {
    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (index, env, name, settings) -> {
            int maxLength = settings.getAsInt("max_token_length", 255);
            return TokenizerFactory.newFactory(name, () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(maxLength);
                return tokenizer;
            });
        });
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        // pattern_capture has no meaning without its patterns: only usable as a
        // configured filter (otherwise every index would build one with none).
        AnalysisProvider<TokenFilterFactory> patternCapture = new AnalysisProvider<>() {
            @Override
            public TokenFilterFactory get(IndexSettings index, Environment env, String name, Settings settings) {
                Pattern[] patterns = settings.getAsList("patterns").stream().map(Pattern::compile).toArray(Pattern[]::new);
                if (patterns.length == 0) {
                    throw new IllegalArgumentException("pattern_capture filter [" + name + "] needs [patterns]");
                }
                boolean keepOriginal = settings.getAsBoolean("preserve_original", true);
                return filter(name, in -> new PatternCaptureGroupTokenFilter(in, keepOriginal, patterns));
            }

            @Override
            public boolean requiresAnalysisSettings() {
                return true;
            }
        };
        return Map.of(
            "pattern_capture", patternCapture,
            "unique", (index, env, name, settings) -> filter(name, RemoveDuplicatesTokenFilter::new)
        );
    }

    private static TokenFilterFactory filter(String name, UnaryOperator<TokenStream> wrap) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream input) {
                return wrap.apply(input);
            }
        };
    }
}
